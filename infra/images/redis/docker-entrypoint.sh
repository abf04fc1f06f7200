#!/bin/sh
# Entrypoint of drydock/redis:8, modelled on the official redis image's docker-entrypoint.sh.
set -e

# first arg is `-f` or `--some-option`
# or first arg is `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ]; then
	# The official image patches redis so that protected-mode defaults to "no" (Docker's port mapping
	# and networks are the access control). Debian's redis-server keeps the upstream default ("yes"),
	# so add it unless the user set it or passed a config file (whose setting then wins).
	case " $* " in
		*' --protected-mode '* | *'.conf '*) ;;
		*) set -- "$@" --protected-mode no ;;
	esac

	# allow the container to be started with `--user`
	if [ "$(id -u)" = '0' ]; then
		find . \! -user redis -exec chown redis '{}' +
		exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
	fi
fi

# set an appropriate umask (if one isn't set already)
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
