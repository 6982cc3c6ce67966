/* The canonical JSON text of one plan_series level, written straight from SQLite (app.storage.rowtext).
 *
 * level_text(path, version_id, level, sql, kinds, columns, literals, week, period) runs `sql` (bound to
 * version_id and level) on its own connection to the SQLite file `path` and writes every row as a JSON
 * object: literals[i] then the value of row column columns[i] as kinds[i] says, for each field in the
 * order given, then the last literal. It returns (text, rows), or None as soon as a value is outside
 * the simple cases the caller's codec writes the same way: whole numbers below 2**53, strings without a
 * character JSON escapes, nulls only where the kind allows them, `seq` (column 0) exactly 0..n-1 and no
 * leftover keys (the last column null). The caller then decodes the level row by row.
 *
 * Kinds: 'n' number, 'N' number or null, 'i' integer, 'b' boolean (0 is false), 's' string, 'S' string
 * or null. `week`/`period`: the columns of a week stored as "<week>@<period>" (the suffix is cut), or -1.
 *
 * rows_json(path, version_id, level, sql) returns (text, rows) with the text orjson writes for the list
 * of row tuples (the rows digest hashes it: app.storage.digests), or None for a level outside its simple
 * cases (a fraction or a double beyond 1e16, -0.0, a string JSON must escape, a blob).
 *
 * The connection is opened through the same libsqlite3 the interpreter's sqlite3 module uses, so its
 * file locks are shared with the process's other connections. The work runs without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_LIMIT 9007199254740992.0 /* 2**53 */
#define EXACT_INT 9007199254740992LL

enum { OK = 0, NOT_SIMPLE = 1, NO_MEMORY = -1 };

typedef struct {
    char *data;
    size_t len, cap;
} Buffer;

static int grow(Buffer *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return OK;
    size_t cap = b->cap ? b->cap : (size_t)1 << 20;
    while (cap < b->len + extra)
        cap *= 2;
    char *bigger = realloc(b->data, cap);
    if (bigger == NULL)
        return NO_MEMORY;
    b->data = bigger;
    b->cap = cap;
    return OK;
}

static int put(Buffer *b, const void *bytes, size_t n)
{
    if (grow(b, n) != OK)
        return NO_MEMORY;
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return OK;
}

static int put_integer(Buffer *b, long long value)
{
    char digits[24];
    int at = (int)sizeof digits;
    unsigned long long u = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[--at] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (value < 0)
        digits[--at] = '-';
    return put(b, digits + at, sizeof digits - (size_t)at);
}

static int put_number(Buffer *b, sqlite3_stmt *stmt, int column, int type, char kind)
{
    if (type == SQLITE_INTEGER) {
        long long value = sqlite3_column_int64(stmt, column);
        if (kind != 'i' && (value >= EXACT_INT || value <= -EXACT_INT))
            return NOT_SIMPLE;
        return put_integer(b, value);
    }
    if (type == SQLITE_FLOAT) {
        double value = sqlite3_column_double(stmt, column);
        if (!(value == floor(value)) || !(fabs(value) < EXACT_LIMIT))
            return NOT_SIMPLE; /* a fraction, NaN, an infinity or beyond 2**53 */
        return put_integer(b, (long long)value);
    }
    return NOT_SIMPLE;
}

static int put_string(Buffer *b, sqlite3_stmt *stmt, int column, int type, int period)
{
    if (type != SQLITE_TEXT)
        return NOT_SIMPLE;
    const unsigned char *text = sqlite3_column_text(stmt, column);
    int n = sqlite3_column_bytes(stmt, column);
    if (text == NULL)
        return NO_MEMORY;
    for (int i = 0; i < n; i++) {
        unsigned char c = text[i];
        if (c == '"' || c == '\\' || c < 0x20)
            return NOT_SIMPLE;
    }
    if (period >= 0) { /* "<week>@<period>": keep the week */
        if (sqlite3_column_type(stmt, period) != SQLITE_TEXT)
            return NOT_SIMPLE;
        const unsigned char *suffix = sqlite3_column_text(stmt, period);
        int m = sqlite3_column_bytes(stmt, period);
        if (suffix == NULL)
            return NO_MEMORY;
        if (n >= m + 1 && text[n - m - 1] == '@' && memcmp(text + n - m, suffix, (size_t)m) == 0)
            n -= m + 1;
    }
    if (put(b, "\"", 1) != OK || put(b, text, (size_t)n) != OK || put(b, "\"", 1) != OK)
        return NO_MEMORY;
    return OK;
}

static int put_value(Buffer *b, sqlite3_stmt *stmt, int column, char kind, int period)
{
    int type = sqlite3_column_type(stmt, column);
    if (type == SQLITE_NULL)
        return (kind == 'N' || kind == 'S') ? put(b, "null", 4) : NOT_SIMPLE;
    switch (kind) {
    case 'n':
    case 'N':
    case 'i':
        return put_number(b, stmt, column, type, kind);
    case 'b':
        if (type != SQLITE_INTEGER)
            return NOT_SIMPLE;
        return sqlite3_column_int64(stmt, column) == 0 ? put(b, "false", 5) : put(b, "true", 4);
    case 's':
    case 'S':
        return put_string(b, stmt, column, type, period);
    default:
        return NOT_SIMPLE;
    }
}

typedef struct {
    const char *path, *version_id, *level, *sql, *kinds;
    Py_ssize_t fields;
    int *columns;
    const char **literals;
    Py_ssize_t *literal_sizes;
    int week, period;
} Job;

/* Writes one row; returns OK, NOT_SIMPLE or NO_MEMORY. */
typedef int (*RowWriter)(Buffer *out, sqlite3_stmt *stmt, long long row, const void *context);

/* Runs `sql` bound to (version_id, level) on a new connection to `path` and writes "[" row "," row ... "]". */
static int write_rows(const char *path, const char *version_id, const char *level, const char *sql,
                      RowWriter write_row, const void *context, Buffer *out, long long *rows)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int status = NOT_SIMPLE;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        goto finish;
    sqlite3_busy_timeout(db, 30000);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK
        || sqlite3_bind_text(stmt, 1, version_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, level, -1, SQLITE_STATIC) != SQLITE_OK)
        goto finish;
    if ((status = put(out, "[", 1)) != OK)
        goto finish;
    long long row = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if ((row && (status = put(out, ",", 1)) != OK) || (status = write_row(out, stmt, row, context)) != OK)
            goto finish;
        row++;
    }
    status = NOT_SIMPLE;
    if (rc != SQLITE_DONE)
        goto finish;
    if ((status = put(out, "]", 1)) != OK)
        goto finish;
    *rows = row;
finish:
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return status;
}

/* A row as a JSON object (level_text). */
static int write_object(Buffer *out, sqlite3_stmt *stmt, long long row, const void *context)
{
    const Job *job = context;
    int last = sqlite3_column_count(stmt) - 1;
    if (row == 0) {
        for (Py_ssize_t i = 0; i < job->fields; i++)
            if (job->columns[i] < 1 || job->columns[i] >= last)
                return NOT_SIMPLE;
        if (job->week >= last || job->period >= last)
            return NOT_SIMPLE;
    }
    if (sqlite3_column_type(stmt, 0) != SQLITE_INTEGER || sqlite3_column_int64(stmt, 0) != row)
        return NOT_SIMPLE; /* seq is not 0..n-1 */
    if (sqlite3_column_type(stmt, last) != SQLITE_NULL)
        return NOT_SIMPLE; /* leftover keys */
    for (Py_ssize_t i = 0; i < job->fields; i++) {
        int column = job->columns[i];
        int done = put(out, job->literals[i], (size_t)job->literal_sizes[i]);
        if (done == OK)
            done = put_value(out, stmt, column, job->kinds[i], column == job->week ? job->period : -1);
        if (done != OK)
            return done;
    }
    return put(out, job->literals[job->fields], (size_t)job->literal_sizes[job->fields]);
}

/* Every column of every row as orjson writes a list of row tuples: [[v,v,...],...]. Whole doubles
 * below 1e16 are written as "<integer>.0"; any other double, a blob or a string JSON must escape makes
 * the level not simple. */
static int put_cell(Buffer *b, sqlite3_stmt *stmt, int column)
{
    switch (sqlite3_column_type(stmt, column)) {
    case SQLITE_NULL:
        return put(b, "null", 4);
    case SQLITE_INTEGER:
        return put_integer(b, sqlite3_column_int64(stmt, column));
    case SQLITE_FLOAT: {
        double value = sqlite3_column_double(stmt, column);
        if (!(value == floor(value)) || !(fabs(value) < 1e16) || (value == 0 && signbit(value)))
            return NOT_SIMPLE;
        int done = put_integer(b, (long long)value);
        return done == OK ? put(b, ".0", 2) : done;
    }
    case SQLITE_TEXT:
        return put_string(b, stmt, column, SQLITE_TEXT, -1);
    default:
        return NOT_SIMPLE;
    }
}

/* A row as a JSON array of its columns (rows_json). */
static int write_tuple(Buffer *out, sqlite3_stmt *stmt, long long row, const void *context)
{
    (void)row;
    (void)context;
    int width = sqlite3_column_count(stmt);
    int done = put(out, "[", 1);
    for (int column = 0; done == OK && column < width; column++) {
        if (column)
            done = put(out, ",", 1);
        if (done == OK)
            done = put_cell(out, stmt, column);
    }
    return done == OK ? put(out, "]", 1) : done;
}

static PyObject *finish_text(int status, Buffer *out, long long rows)
{
    PyObject *result = NULL;
    if (status == OK) {
        PyObject *text = PyBytes_FromStringAndSize(out->data, (Py_ssize_t)out->len);
        if (text != NULL)
            result = Py_BuildValue("(NL)", text, rows);
    } else if (status == NO_MEMORY) {
        PyErr_NoMemory();
    } else {
        result = Py_NewRef(Py_None);
    }
    free(out->data);
    out->data = NULL;
    return result;
}

static PyObject *rows_json(PyObject *self, PyObject *args)
{
    const char *path, *version_id, *level, *sql;
    Buffer out = {NULL, 0, 0};
    long long rows = 0;
    int status;
    (void)self;
    if (!PyArg_ParseTuple(args, "ssss", &path, &version_id, &level, &sql))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    status = write_rows(path, version_id, level, sql, write_tuple, NULL, &out, &rows);
    Py_END_ALLOW_THREADS
    return finish_text(status, &out, rows);
}

static PyObject *level_text(PyObject *self, PyObject *args)
{
    (void)self;
    Job job;
    PyObject *columns, *literals, *result = NULL;
    Buffer out = {NULL, 0, 0};
    long long rows = 0;
    int status;
    if (!PyArg_ParseTuple(args, "sssss#O!O!ii", &job.path, &job.version_id, &job.level, &job.sql,
                          &job.kinds, &job.fields, &PyTuple_Type, &columns, &PyTuple_Type, &literals,
                          &job.week, &job.period))
        return NULL;
    if (PyTuple_GET_SIZE(columns) != job.fields || PyTuple_GET_SIZE(literals) != job.fields + 1) {
        PyErr_SetString(PyExc_ValueError, "one column per kind and one literal more are needed");
        return NULL;
    }
    job.columns = PyMem_Calloc((size_t)job.fields + 1, sizeof(int));
    job.literals = PyMem_Calloc((size_t)job.fields + 1, sizeof(char *));
    job.literal_sizes = PyMem_Calloc((size_t)job.fields + 1, sizeof(Py_ssize_t));
    if (job.columns == NULL || job.literals == NULL || job.literal_sizes == NULL) {
        PyErr_NoMemory();
        goto cleanup;
    }
    for (Py_ssize_t i = 0; i < job.fields; i++) {
        long column = PyLong_AsLong(PyTuple_GET_ITEM(columns, i));
        if (column == -1 && PyErr_Occurred())
            goto cleanup;
        job.columns[i] = (int)column;
    }
    for (Py_ssize_t i = 0; i <= job.fields; i++) {
        char *bytes;
        if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(literals, i), &bytes, &job.literal_sizes[i]) < 0)
            goto cleanup;
        job.literals[i] = bytes;
    }
    Py_BEGIN_ALLOW_THREADS
    status = write_rows(job.path, job.version_id, job.level, job.sql, write_object, &job, &out, &rows);
    Py_END_ALLOW_THREADS
    result = finish_text(status, &out, rows);
cleanup:
    free(out.data);
    PyMem_Free(job.columns);
    PyMem_Free(job.literals);
    PyMem_Free(job.literal_sizes);
    return result;
}

static PyMethodDef methods[] = {
    {"level_text", level_text, METH_VARARGS,
     "level_text(path, version_id, level, sql, kinds, columns, literals, week, period) -> (bytes, rows) | None"},
    {"rows_json", rows_json, METH_VARARGS, "rows_json(path, version_id, level, sql) -> (bytes, rows) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowtext", "The canonical JSON text of plan_series levels, written in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowtext(void)
{
    return PyModule_Create(&module);
}
