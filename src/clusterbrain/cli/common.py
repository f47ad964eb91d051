"""What the command's modules share: the console, logging, the shell's administrator, refusals,
moments and zones, JSON and YAML documents."""

from __future__ import annotations

import enum
import json
import logging
import re
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from clusterbrain.platform.settings import Settings

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.orm import Session

    from clusterbrain.api.runtime import Runtime
    from clusterbrain.platform.tenancy import Principal

M = TypeVar("M", bound="BaseModel")

console = Console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


# --- the shell's administrator --------------------------------------------------------------------


def _admin_context() -> Runtime:
    from clusterbrain.api.runtime import Runtime

    return Runtime(Settings())


@contextmanager
def _refusals() -> Iterator[None]:
    """A refused request ends the command with one line on stderr and exit code 1."""
    from clusterbrain.platform.errors import ClusterBrainError

    try:
        yield
    except ClusterBrainError as exc:
        detail = " ".join(exc.detail.split())
        if exc.field and exc.field not in detail:
            detail = f"{exc.field}: {detail}"
        typer.echo(f"error: {detail}", err=True)
        raise typer.Exit(1) from exc


def _admin_principal(session: Session) -> Principal:
    from clusterbrain.platform.service import bootstrap_admin, principal_of

    return principal_of(bootstrap_admin(session, "admin")[0])


def _checked(model: type[M], data: dict[str, Any], options: Mapping[str, str]) -> M:
    """Validate with the API's model; the first error is reported under its command-line option."""
    from pydantic import ValidationError

    from clusterbrain.platform.errors import InvalidInput

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first.get("loc", ()))
        where = options.get(loc, loc)
        message = first.get("msg", "invalid").removeprefix("Value error, ")
        if where:
            raise InvalidInput(f"{where}: {message}", field=where) from exc
        for name, option in options.items():  # a rule across fields names them in its message
            message = re.sub(rf"\b{name}\b", option, message)
        raise InvalidInput(message) from exc


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from clusterbrain.platform.errors import InvalidInput

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"--timezone: unknown time zone {name!r}", field="--timezone") from exc


def _parse_moment(text: str, zone: str, option: str) -> datetime:
    """ISO 8601; a date or a time without zone is local time of the site's zone."""
    from clusterbrain.platform.errors import InvalidInput

    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{option}: not an ISO 8601 time: {text!r}", field=option) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=_zone(zone))


def _local(moment: datetime, zone: tzinfo | None) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


# --- JSON and YAML documents ----------------------------------------------------------------------


class DocumentFormat(enum.StrEnum):
    JSON = "json"
    YAML = "yaml"


def _yaml() -> Any:
    """PyYAML, imported only when a YAML file is read or written."""
    from clusterbrain.platform.errors import InvalidInput

    try:
        import yaml
    except ImportError as exc:
        raise InvalidInput("YAML needs PyYAML installed; use a .json file", field="--file") from exc
    return yaml


def _yaml_loader(yaml: Any) -> Any:
    """YAML 1.1 without base-60 integers: an unquoted 20:00 stays a time, not 1200."""
    int_tag = "tag:yaml.org,2002:int"
    loader: Any = type("CalendarLoader", (yaml.SafeLoader,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != int_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        int_tag, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
    )
    return loader


def _read_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML mapping, by the file's suffix."""
    from clusterbrain.platform.errors import InvalidInput

    suffix = path.suffix.lower()
    if suffix not in {".json", ".yaml", ".yml"}:
        raise InvalidInput(f"--file: {path.name} is neither .json nor .yaml", field="--file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--file: cannot read {path}: {exc}", field="--file") from exc
    if suffix == ".json":
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"--file: {path.name} is not JSON: {exc}", field="--file") from exc
    else:
        yaml = _yaml()
        try:
            document = yaml.load(text, Loader=_yaml_loader(yaml))
        except yaml.YAMLError as exc:
            message = " ".join(str(exc).split())
            raise InvalidInput(
                f"--file: {path.name} is not YAML: {message}", field="--file"
            ) from exc
    if not isinstance(document, dict):
        raise InvalidInput(f"--file: {path.name} must hold a mapping", field="--file")
    return document


def _dump(document: dict[str, Any], fmt: DocumentFormat) -> str:
    if fmt is DocumentFormat.JSON:
        return json.dumps(document, indent=2, ensure_ascii=False)
    dumped: str = _yaml().safe_dump(document, sort_keys=False, allow_unicode=True)
    return dumped.rstrip("\n")
