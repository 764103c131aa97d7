"""The run event stream (server-sent events) over a real HTTP server."""

from __future__ import annotations

import json
import queue
import threading

import httpx
from _env import LiveServer

from upkeep.engine import lifecycle as run_ops
from upkeep.engine.lifecycle import WorkerIdentity, append_event


def parse_sse(lines):
    """Yield (event, id, data) from an iterator of SSE lines."""
    event, event_id, data = "message", None, []
    for line in lines:
        if line == "":
            if data:
                yield event, event_id, json.loads("\n".join(data))
            event, event_id, data = "message", None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def reader(url, headers, out: queue.Queue) -> threading.Thread:
    def run():
        with httpx.Client(timeout=30) as client, client.stream("GET", url, headers=headers) as response:
            out.put(("status", response.status_code, response.headers.get("content-type")))
            for message in parse_sse(response.iter_lines()):
                out.put(message)
        out.put(("closed", None, None))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def next_of(out: queue.Queue, kind: str):
    while True:
        item = out.get(timeout=15)
        if item[0] == kind:
            return item


def write_event(store, run_id, name, message):
    with store.write() as s:
        return append_event(s, run_id, "info", name, message, {"token": "hunter2-sse"})


def test_stream_delivers_events_as_they_are_written_and_ends_with_the_run(api):
    api.upkeep.create_task({"name": "s", "type": "debug.sleep"}, actor="test")
    run = api.upkeep.trigger("s", actor="test")
    claimed = run_ops.claim(api.store, run["id"], WorkerIdentity.current())
    assert claimed is not None
    out: queue.Queue = queue.Queue()
    with LiveServer(api) as server:
        thread = reader(f"{server.url}/api/v1/runs/{run['id']}/events/stream", api.headers("viewer"), out)
        status = next_of(out, "status")
        assert status[1] == 200 and status[2].startswith("text/event-stream")
        assert next_of(out, "run")[2]["status"] == "running"
        for i in range(3):
            seq = write_event(api.store, run["id"], f"step{i}", f"step {i}")
            kind, event_id, data = next_of(out, "log")
            assert (event_id, data["event"], data["message"]) == (str(seq), f"step{i}", f"step {i}")
            assert data["data"] == {"token": "***"}
        run_ops.finish(api.store, run["id"], "completed", outcome="warning", summary="done")
        assert next_of(out, "run")[2]["status"] == "completed"
        end = next_of(out, "end")[2]
        assert end["status"] == "completed" and end["outcome"] == "warning"
        next_of(out, "closed")
        thread.join(5)


def test_stream_resumes_after_last_event_id_and_unknown_runs_are_404(api):
    api.upkeep.create_task({"name": "s", "type": "debug.sleep"}, actor="test")
    run = api.upkeep.trigger("s", actor="test")
    run_ops.claim(api.store, run["id"], WorkerIdentity.current())
    seqs = [write_event(api.store, run["id"], f"e{i}", "x") for i in range(4)]
    run_ops.finish(api.store, run["id"], "completed", outcome="ok")
    with LiveServer(api) as server, httpx.Client(timeout=10) as client:
        headers = {**api.headers("viewer"), "Last-Event-ID": str(seqs[1])}
        response = client.get(f"{server.url}/api/v1/runs/{run['id']}/events/stream", headers=headers)
        messages = list(parse_sse(response.text.split("\n")))
        logs = [int(i) for kind, i, _ in messages if kind == "log"]
        stored = [e["seq"] for e in api.upkeep.run_events(run["id"])]
        assert logs == [s for s in stored if s > seqs[1]] and logs[:2] == seqs[2:]
        assert messages[-1][0] == "end"
        missing = client.get(f"{server.url}/api/v1/runs/999999/events/stream", headers=api.headers("viewer"))
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
        assert client.get(f"{server.url}/api/v1/runs/{run['id']}/events/stream").status_code == 401
