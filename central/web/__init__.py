"""The residents' web pages, served by central (docs/web.md): the public congestion page and each
resident's ticket page, live by Server-Sent Events.

`view` turns a worker's OfficeState into frozen snapshots, `hub` hands them from the worker's
thread to the web's event loop, `app` renders them (templates/, static/), `forecast` is the seam
for the congestion forecast, `server` runs uvicorn in a thread. Nothing here writes to the store
or the broker, and nothing holds or logs a resident's token.
"""

from central.web.app import create_app
from central.web.forecast import Forecaster, HourForecast, StandInForecaster
from central.web.hub import ViewHub
from central.web.server import WebServer

__all__ = ["Forecaster", "HourForecast", "StandInForecaster", "ViewHub", "WebServer", "create_app"]
