"""JSON log lines carry the event id, run id and entity of the work they concern."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from sync_core import logs


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(message)s%(context)s"))
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger(f"wecom_sync.test.{fmt}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream, handler


def test_bound_ids_reach_tasks_and_threads_started_inside() -> None:
    logger, stream, handler = _capture("json")

    async def main() -> None:
        with logs.bind(run_id=7):
            task = asyncio.create_task(asyncio.to_thread(logger.info, "applied 用户 张三"))
        logger.info("unrelated")
        await task
        with logs.bind(event_id=12, entity="user:zhangsan"):
            logger.info("settled", extra={"event_id": 13})

    asyncio.run(main())
    logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    assert by_message["applied 用户 张三"]["run_id"] == 7
    assert "run_id" not in by_message["unrelated"] and "context" not in by_message["unrelated"]
    assert by_message["settled"]["event_id"] == 13  # an explicit extra wins
    assert by_message["settled"]["entity"] == "user:zhangsan"
    assert set(by_message["unrelated"]) == {"time", "level", "logger", "message"}


def test_text_lines_end_with_the_ids() -> None:
    logger, stream, handler = _capture("text")
    with logs.bind(run_id=3, entity="department:5"):
        logger.info("done")
    logger.info("plain")
    logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["done [run_id=3] [entity=department:5]", "plain"]
