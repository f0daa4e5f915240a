#!/bin/sh
# Start `mlflow server` with the backend store URI (it holds the database password) read from a
# mounted secret file, so it is neither in the pod spec nor in the container's environment listing.
set -eu
if [ -n "${MLFLOW_BACKEND_STORE_URI_FILE:-}" ]; then
    MLFLOW_BACKEND_STORE_URI="$(cat "${MLFLOW_BACKEND_STORE_URI_FILE}")"
    export MLFLOW_BACKEND_STORE_URI
fi
# The same for basic-auth's Flask secret key (CSRF), which MLflow reads only from its environment.
if [ -n "${MLFLOW_FLASK_SERVER_SECRET_KEY_FILE:-}" ]; then
    MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "${MLFLOW_FLASK_SERVER_SECRET_KEY_FILE}")"
    export MLFLOW_FLASK_SERVER_SECRET_KEY
fi
exec mlflow server "$@"
