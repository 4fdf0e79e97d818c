#!/bin/sh
# Start the demo site.
exec python3 -m http.server --directory "$(dirname "$0")/.." 8000
