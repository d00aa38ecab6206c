#!/usr/bin/env bash
# Grade a class on a Slurm cluster in N shards, then merge them: two sbatch calls.
#
#   deploy/slurm/submit.sh SUBMISSIONS OUT N
#
# Run from the course checkout; OUT must be on a file system every node sees.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 SUBMISSIONS OUT N  (N: how many shards, e.g. one per node)" >&2
  exit 2
fi
submissions=$1
out=$2
shards=$3
here=$(dirname "$0")
mkdir -p "$out"
job=$(sbatch --parsable --array="1-$shards" "$here/grade.sbatch" "$submissions" "$out" "$shards")
job=${job%%;*}  # --parsable prints JOBID or JOBID;CLUSTER
# afterany, not afterok: a shard with an ungradeable file exits 1 yet its grades are complete;
# merge itself refuses a shard that did not finish.
sbatch --parsable --dependency="afterany:$job" "$here/merge.sbatch" "$out" "$shards"
echo "grading: array job $job ($shards shards); the merge runs when every shard has ended, into $out/merged"
