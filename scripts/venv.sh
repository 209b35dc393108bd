#!/usr/bin/env bash
# Creates (or refreshes) a Python virtualenv from a pinned requirements file, once per change of that file.
#   scripts/venv.sh DIR REQUIREMENTS_FILE
# Prints nothing when the environment is already up to date.
set -euo pipefail
dir=$1
requirements=$2
stamp="$dir/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
python=${PYTHON:-python3}
echo "setting up $dir from $requirements (once) ..." >&2
"$python" -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"
