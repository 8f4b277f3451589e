#!/usr/bin/env bash
# Fill in cluster/gpu.yaml for your AWS account, in place (run once before `ray up`).
#
#   cluster/configure.sh --bucket my-cmr-bucket [--region us-east-1] [--pin-ami | --ami ami-...]
#                        [--worker-profile NAME] [--config cluster/gpu.yaml]
#
#   --bucket          S3 bucket for the clip store, checkpoints, Tune results and MLflow
#                     artifacts (replaces CMR_BUCKET; the bucket must exist)
#   --region          AWS region (default: keep the file's); availability zones a,b,c
#   --pin-ami         resolve the Deep Learning Base GPU AMI now (needs the aws CLI) and
#                     write its ami-... so every node of a long run boots the same image
#   --ami ID          write this AMI instead
#   --worker-profile  instance profile the workers use for S3 (default ray-autoscaler-v1)
set -euo pipefail
die() { echo "configure.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
config="$here/gpu.yaml"
bucket="" region="" ami="" pin=0 profile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bucket) bucket=${2:?}; shift 2 ;;
    --region) region=${2:?}; shift 2 ;;
    --ami) ami=${2:?}; shift 2 ;;
    --pin-ami) pin=1; shift ;;
    --worker-profile) profile=${2:?}; shift 2 ;;
    --config) config=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ -f "$config" ] || die "$config: no such file"
[ -n "$bucket" ] || die "--bucket is required"
[[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "--bucket '$bucket': not a valid S3 bucket name"
[ -z "$region" ] || [[ "$region" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || die "--region '$region': not an AWS region name"
[ -z "$ami" ] || [[ "$ami" =~ ^ami-[0-9a-f]{8,17}$ ]] || die "--ami '$ami': expected ami-<hex>"
[ -z "$profile" ] || [[ "$profile" =~ ^[A-Za-z0-9+=,.@_-]{1,128}$ ]] || die "--worker-profile '$profile': not an instance profile name"
grep -q 'CMR_BUCKET' "$config" || grep -q 's3://[a-z0-9.-]*/mlflow-artifacts' "$config" \
  || die "$config: no MLflow artifact bucket line to set"

ssm=/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id
cur_region=$(sed -n 's/^  region: *//p' "$config")
if [ "$pin" = 1 ] && [ -z "$ami" ]; then
  command -v aws >/dev/null || die "--pin-ami needs the aws CLI"
  ami=$(aws ssm get-parameter --region "${region:-$cur_region}" --name "$ssm" \
        --query Parameter.Value --output text) || die "could not resolve $ssm"
fi

tmp=$(mktemp "$config.XXXXXX")
trap 'rm -f "$tmp"' EXIT
sed -E \
  -e "s#s3://(CMR_BUCKET|[a-z0-9.-]+)/mlflow-artifacts#s3://$bucket/mlflow-artifacts#" \
  ${region:+-e "s#^  region: .*#  region: $region#"} \
  ${region:+-e "s#^  availability_zone: .*#  availability_zone: ${region}a,${region}b,${region}c#"} \
  ${ami:+-e "s#ImageId: &ami [^ ]+#ImageId: \\&ami $ami#"} \
  ${profile:+-e "s#IamInstanceProfile: \\{Name: [^}]+\\}#IamInstanceProfile: {Name: $profile}#"} \
  "$config" > "$tmp"
mv "$tmp" "$config"
trap - EXIT
echo "configure.sh: wrote $config (bucket $bucket${region:+, region $region}${ami:+, AMI $ami}${profile:+, worker profile $profile})"
