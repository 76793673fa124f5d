"""The daemon's web side: the ASGI app (status, API, events, dashboard) that uvicorn serves."""
