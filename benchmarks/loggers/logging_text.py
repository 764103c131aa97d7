"""A worker's text log written by Python's ``logging``: ``python logging_text.py OUT LINES [SPAN_HOURS]``.

The format most apps copy from the logging docs (``%(asctime)s %(levelname)s [%(name)s] %(message)s``,
asctime with its comma and milliseconds, local time: run it with TZ set), every level from DEBUG to
CRITICAL, and ``logger.exception`` tracebacks, whose continuation lines carry no timestamp. With
SPAN_HOURS the records are spread over the last SPAN_HOURS hours (the record's creation time is
stepped, as a clock would).
"""

from __future__ import annotations

import logging
import random
import sys
import time


def main(out: str, lines: int, span_hours: float = 0.0, seed: int = 11) -> None:
    rnd = random.Random(seed)
    handler = logging.FileHandler(out, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
    start = time.time() - span_hours * 3600
    index = 0
    factory = logging.getLogRecordFactory()

    def stamped(*args, **kwargs):
        record = factory(*args, **kwargs)
        if span_hours:
            record.created = start + index * span_hours * 3600 / lines
            record.msecs = (record.created - int(record.created)) * 1000
        return record

    logging.setLogRecordFactory(stamped)
    jobs = logging.getLogger("worker.jobs")
    mail = logging.getLogger("worker.mail")
    for index in range(lines):
        r = rnd.random()
        if r < 0.01:
            try:
                {}["customer_id"]
            except KeyError:
                jobs.exception("job %d failed", index)
        elif r < 0.02:
            jobs.error("job %d gave up after %d retries", index, rnd.randint(1, 5))
        elif r < 0.025:
            mail.critical("mail queue full: %d messages", rnd.randint(1000, 9999))
        elif r < 0.08:
            mail.warning("smtp slow: %.1f s", rnd.uniform(1, 9))
        elif r < 0.3:
            jobs.debug("polling queue %s", rnd.choice(["default", "mail", "reports"]))
        else:
            jobs.info("job %d done in %d ms", index, rnd.randint(1, 900))
    handler.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
