#!/bin/sh
# Start `mlflow server` with the backend store URI (it holds the database password) read from a
# mounted secret file, so it is neither in the pod spec nor in the container's environment listing.
set -eu
if [ -n "${MLFLOW_BACKEND_STORE_URI_FILE:-}" ]; then
    MLFLOW_BACKEND_STORE_URI="$(cat "${MLFLOW_BACKEND_STORE_URI_FILE}")"
    export MLFLOW_BACKEND_STORE_URI
fi
exec mlflow server "$@"
