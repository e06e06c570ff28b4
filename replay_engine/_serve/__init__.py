"""The HTTP server: a JSON API and a web console on a journal (``serve``).

An optional extra (``pip install replay-engine[serve]``: Starlette and
uvicorn). Like the CLI it uses only the public API, ``journal_format`` and
the CLI's JSON document builders (the API's documents *are* the CLI's), and it
never imports or runs process code: a worker does that. See docs/http-api.md.
"""
