"""The one build step pyproject.toml cannot state: the optional C writer of level texts.

``app/storage/_rowtext.c`` links the system SQLite (the library the ``sqlite3`` module uses). Where it
cannot be built (no compiler, no SQLite headers) the install goes on and the pure Python path is used
(``app.storage.rowtext``). Everything else about the package is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "app.storage._rowtext",
            sources=["app/storage/_rowtext.c"],
            libraries=["sqlite3"],
            extra_compile_args=["-O2", "-Wall"],
            optional=True,
        )
    ]
)
