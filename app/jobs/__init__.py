"""Plan jobs: the huey queue (``queue``), job execution and the reaper (``tasks``), the functions the
API and CLI call (``service``) and the consumers that run jobs (``worker``).

Import the submodules directly; this package imports nothing so that ``app.jobs.queue`` stays cheap.
"""
