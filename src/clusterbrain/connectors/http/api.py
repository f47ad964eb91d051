"""HTTP ingest for devices that cannot speak MQTT: same payloads, same pipeline, same dead letters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from clusterbrain.devices.directory import SqlDeviceDirectory
from clusterbrain.platform.errors import Unauthenticated, Unavailable
from clusterbrain.platform.problems import language_of, problem
from clusterbrain.platform.web import bearer_token
from clusterbrain.telemetry.pipeline import IngestPipeline, RawMessage
from clusterbrain.telemetry.schemas import IngestResult

router = APIRouter(prefix="/api/v1")


def get_pipeline(request: Request) -> IngestPipeline:
    pipeline: IngestPipeline = request.app.state.pipeline
    return pipeline


@router.post(
    "/ingest/{device_id}/telemetry",
    tags=["ingest"],
    response_model=IngestResult,
    status_code=202,
    responses={401: {"description": "Unknown device or wrong secret"}},
)
async def ingest_telemetry(
    device_id: str,
    request: Request,
    secret: Annotated[str, Depends(bearer_token)],
    pipeline: Annotated[IngestPipeline, Depends(get_pipeline)],
) -> JSONResponse:
    """Post one sample or a list of samples with the device's secret as the bearer token."""
    directory: SqlDeviceDirectory = request.app.state.directory
    spec = await run_in_threadpool(directory.authenticate, device_id, secret)
    if spec is None:
        raise Unauthenticated("unknown device, wrong secret or revoked device")
    payload = await request.body()
    topic = f"http:/api/v1/ingest/{device_id}/telemetry"
    message = RawMessage(device_id=device_id, payload=payload, source="http", topic=topic)
    outcome = await run_in_threadpool(pipeline.submit_and_wait, message)
    if outcome is None:
        raise Unavailable("ingest is overloaded; retry later")
    result = IngestResult(
        accepted_points=outcome.points,
        rejected=[{"reason": r.reason.value, "detail": r.detail} for r in outcome.rejections],
    )
    if outcome.points == 0 and outcome.rejections:
        first = outcome.rejections[0]
        return problem(
            422,
            "Telemetry rejected",
            f"{first.reason.value}: {first.detail}",
            slug="telemetry-rejected",
            instance=request.url.path,
            language=language_of(request),
            field="body",
            rejected=result.rejected,
        )
    return JSONResponse(result.model_dump(), status_code=202)
