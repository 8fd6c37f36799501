"""Node.js errors and pages that the scenarios put into logs and responses.

Messages and stack frames follow what Node 20, node-postgres (``pg`` and ``pg-pool``),
V8 and Express print. Addresses are documentation-range stand-ins (RFC 5737).
"""

from __future__ import annotations

from veerunbook.simulator.model import ErrorSignature

# node-postgres surfaces a refused TCP connection as a plain Error from Node's net
# module; the address is a documentation-range stand-in for the database host.
CONNECTION_REFUSED = ErrorSignature(
    type="Error",
    message="connect ECONNREFUSED 192.0.2.10:5432",
    frames=("TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)",),
)

# pg-pool rejects a checkout with this Error once ``connectionTimeoutMillis`` passes
# while every connection stays checked out.
POOL_CHECKOUT_TIMEOUT = ErrorSignature(
    type="Error",
    message="timeout exceeded when trying to connect",
    frames=(
        "Timeout._onTimeout (/app/node_modules/pg-pool/index.js:45:11)",
        "listOnTimeout (node:internal/timers:581:17)",
        "process.processTimers (node:internal/timers:519:7)",
    ),
)

PUBLISH_TYPE_ERROR = ErrorSignature(
    type="TypeError",
    message="Cannot read properties of undefined (reading 'id')",
    frames=(
        "InstagramPublisher.createMediaContainer "
        "(/app/dist/services/instagramPublisher.js:118:42)",
        "async InstagramPublisher.publish "
        "(/app/dist/services/instagramPublisher.js:64:23)",
        "async /app/dist/routes/instagram.js:41:20",
    ),
)

ANALYTICS_RANGE_ERROR = ErrorSignature(
    type="RangeError",
    message="Invalid time value",
    frames=(
        "Date.toISOString (<anonymous>)",
        "buildAnalyticsWindow (/app/dist/routes/analytics.js:57:33)",
        "async /app/dist/routes/analytics.js:22:18",
    ),
)

GRAPH_API_UNAVAILABLE = "graph.facebook.com: 503 Service Unavailable"
"""The Instagram health check's detail while the Graph API fails."""

# The publisher wraps the Graph API's HTTP error in an error class of its own.
GRAPH_API_ERROR = ErrorSignature(
    type="InstagramApiError",
    message=GRAPH_API_UNAVAILABLE,
    frames=(
        "InstagramPublisher.request (/app/dist/services/instagramPublisher.js:203:15)",
        "async InstagramPublisher.createMediaContainer "
        "(/app/dist/services/instagramPublisher.js:112:20)",
        "async /app/dist/routes/instagram.js:41:20",
    ),
)

# V8 raises this RangeError when a Buffer cannot be allocated near the heap limit.
BUFFER_ALLOCATION_FAILED = ErrorSignature(
    type="RangeError",
    message="Array buffer allocation failed",
    frames=(
        "new ArrayBuffer (<anonymous>)",
        "buildAnalyticsExport (/app/dist/routes/analytics.js:88:19)",
        "async /app/dist/routes/analytics.js:22:18",
    ),
)

# A maintenance page served with 200 by a proxy in front of the health endpoint.
MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Down for maintenance</title></head>"
    "<body><h1>We&rsquo;ll be back soon</h1>"
    "<p>Veefore is undergoing scheduled maintenance.</p></body></html>"
)
