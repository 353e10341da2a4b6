#!/usr/bin/env bash
# Renders the application icon resources/icons/lathe.svg into the PNG sizes desktops ask for
# (resources/icons/app/lathe-<N>.png). Run it after editing lathe.svg; needs ImageMagick.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$root/resources/icons/lathe.svg"
out="$root/resources/icons/app"
sizes=(16 22 24 32 48 64 128 256 512)

command -v convert >/dev/null || { echo "render-icons: ImageMagick's convert is missing (apt-get install imagemagick)" >&2; exit 1; }
mkdir -p "$out"
for n in "${sizes[@]}"; do
    # Rasterise at a high density, then downscale: small sizes stay sharp and anti-aliased.
    # -strip and no date chunks keep the files byte-identical from one run to the next.
    echo "render-icons: $out/lathe-$n.png"
    convert -background none -density 1536 "$src" -resize "${n}x${n}" -depth 8 -strip \
        -define png:exclude-chunks=date,time "PNG32:$out/lathe-$n.png"
done
