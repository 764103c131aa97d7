"""The admin web UI: server-rendered pages (Jinja2), plain CSS and a little hand-written JavaScript."""
