"""The web console: server-rendered pages over the REST API, at `/` of the api service.

Each page asks the API for its data in-process (the same `/api/v1` requests a browser would
make, with the caller's own session cookie or token, so the roles and the figures are the
API's), renders the figures and tables as HTML, and hands the same JSON to
`static/console.js`, which draws the charts with Apache ECharts and sends decisions back to
the API with the session's CSRF token. No build step: the templates, one script, one style
sheet and the vendored `echarts.min.js` are served as they are.

`register(app)` is what `services.api.app` calls after mounting the API routers.
"""

from services.api.console.pages import register

__all__ = ["register"]
