#!/usr/bin/env bash
# Plots throughput by message size for every transport from rq_bench's CSV:
#   bench/plot.sh results.csv perf-throughput.png
# Needs gnuplot (Debian: apt-get install gnuplot-nox).  Busy-mode rows are
# solid lines, block-mode rows dashed; left: messages/s, right: MB/s.
set -euo pipefail

csv=${1:?usage: plot.sh RESULTS.csv OUT.png}
png=${2:?usage: plot.sh RESULTS.csv OUT.png}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot missing (apt-get install gnuplot-nox)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One data file per transport+mode: size, msgs/s, MB/s (throughput rows only).
awk -F, -v dir="$work" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $col["msgs_per_s"] != "" && $col["status"] == "ok" {
    key = $col["transport"] "@" $col["mode"]
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    print $col["size"], $col["msgs_per_s"], $col["mb_per_s"] > (dir "/" key ".dat")
  }
  END { for (i = 1; i <= n; i++) print order[i] > (dir "/series") }
' "$csv"
[[ -s $work/series ]] || { echo "plot.sh: no throughput rows in $csv" >&2; exit 1; }

# One colour per transport (its busy and block rows share it).
declare -A colour=(
  [min-ring]="#000000" [rq-spsc]="#d62728" [rq-spsc-zc]="#ff7f0e" [rq-mpsc-1p]="#8c564b"
  [rq-mpsc-2p]="#e377c2" [rq-mpsc-3p]="#bcbd22" [pipe]="#1f77b4" [unix]="#17becf"
  [posix-mq]="#2ca02c" [boost-mq]="#9467bd" [boost-mq-2p]="#7f7f7f" [boost-mq-3p]="#aec7e8")
plots_rate=""
plots_mb=""
while read -r key; do
  name=${key%@*}
  mode=${key#*@}
  dash=1
  [[ $mode == block ]] && dash=2
  width=1.5
  [[ $name == rq-* ]] && width=3
  [[ $name == min-ring ]] && width=3
  style="with linespoints lw $width dt $dash pt 7 ps 0.8 lc rgb '${colour[$name]:-#444444}'"
  plots_rate+="'$work/$key.dat' using 1:2 title '$name $mode' $style, "
  plots_mb+="'$work/$key.dat' using 1:3 notitle $style, "
done <"$work/series"

gnuplot <<EOF
set terminal pngcairo size 1400,620 font "DejaVu Sans,10"
set output '$png'
set termoption noenhanced
set multiplot layout 1,2 title "rq_bench: throughput by message size (solid: busy, dashed: block)"
set logscale xy 2
set logscale y 10
set xlabel "message size (bytes)"
set xtics (8, 64, 512, 4096)
set xrange [6:5600]
set grid
set key outside right top font ",9"
set ylabel "messages / s"
set format y "%.0s%c"
set lmargin 10
plot ${plots_rate%, }
set ylabel "MB / s"
set format y "%g"
unset key
plot ${plots_mb%, }
unset multiplot
EOF
echo "wrote $png"
