#!/bin/sh
# Entry point of the ecs-statusbridge image.
#   (no arguments)         -> ecs serve
#   --config FILE ...      -> ecs serve --config FILE ...  (options alone mean `ecs serve`)
#   ecs ... | statusbridge ... | any other command -> run as given
# exec keeps the program as PID 1, so SIGTERM from Docker or Kubernetes reaches it directly.
set -e
case "${1-}" in
    "") set -- ecs serve ;;
    -*) set -- ecs serve "$@" ;;
esac
exec "$@"
