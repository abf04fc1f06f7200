#!/bin/sh
# Like the official nginx image's 20-envsubst-on-templates.sh: renders
#   $NGINX_ENVSUBST_TEMPLATE_DIR/<path>$NGINX_ENVSUBST_TEMPLATE_SUFFIX -> $NGINX_ENVSUBST_OUTPUT_DIR/<path>
# (defaults /etc/nginx/templates, .template, /etc/nginx/conf.d) substituting only the variables that are
# defined in the environment, so nginx variables such as $host survive. Pure POSIX sh + envsubst: output
# subdirectories must already exist (there is no mkdir); NGINX_ENVSUBST_FILTER is not supported.
set -e

ME=${0##*/}

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
    entrypoint_log "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
    exit 0
fi
if [ -n "${NGINX_ENVSUBST_FILTER:-}" ]; then
    entrypoint_log "$ME: WARNING: NGINX_ENVSUBST_FILTER is not supported by this image; ignoring it"
fi

# The variables in the template that are set in the environment, as an envsubst SHELL-FORMAT.
defined_envs() {
    content=
    while IFS= read -r line || [ -n "$line" ]; do
        content="$content$line
"
    done < "$1"
    format=
    for name in $(envsubst --variables "$content"); do
        # $name comes from envsubst --variables, so it is a valid shell identifier.
        if eval "[ -n \"\${$name+x}\" ]"; then
            format="$format \${$name}"
        fi
    done
    printf '%s' "$format"
}

render_dir() {
    for template in "$1"/*; do
        if [ -d "$template" ]; then
            render_dir "$template"
            continue
        fi
        case "$template" in
            *"$suffix") ;;
            *) continue ;;
        esac
        [ -f "$template" ] || continue
        relative_path="${template#"$template_dir/"}"
        output_path="$output_dir/${relative_path%"$suffix"}"
        subdir="${output_path%/*}"
        if [ ! -d "$subdir" ]; then
            entrypoint_log "$ME: ERROR: $subdir does not exist (no mkdir in this image); skipping $template"
            continue
        fi
        entrypoint_log "$ME: Running envsubst on $template to $output_path"
        format="$(defined_envs "$template")"
        envsubst "$format" < "$template" > "$output_path"
    done
}

render_dir "$template_dir"

exit 0
