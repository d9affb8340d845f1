"""Every request, query, response and event shape of the API, declared once: the routes
validate with them and /openapi.json is generated from them (app/openapi.py)."""
