"""Log lines: human-readable by default, JSON lines with `--log-format json`.

Every line written while perfwatch works on a model carries the model's name (a context
variable set by the cycle and the retrain job). Secrets never reach a log line: store URLs
are shown without their password and webhooks by their host alone.
"""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_model: ContextVar[str | None] = ContextVar("perfwatch_model", default=None)


@contextmanager
def about(model: str) -> Iterator[None]:
    """Lines logged inside this block are about `model`."""
    token = _model.set(model)
    try:
        yield
    finally:
        _model.reset(token)


def configure(*, verbose: bool = False, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_with_model)
    handler.setFormatter(
        _JsonLines()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s%(model_tag)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # their INFO lines say nothing an operator acts on: a line per migration plugin, per
    # scheduled job run, per nannyml fit (warnings and errors still come through)
    for chatty in ("alembic", "apscheduler", "nannyml"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _with_model(record: logging.LogRecord) -> bool:
    model = getattr(record, "model", None) or _model.get()
    record.model = model
    named = not model or record.getMessage().startswith(f"{model}:")
    record.model_tag = "" if named else f" [{model}]"
    return True


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "model": getattr(record, "model", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)
