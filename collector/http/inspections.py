"""API: inspections (``/api/v1/...``). Endpoints use :mod:`collector.http.deps`."""

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["inspections"])
