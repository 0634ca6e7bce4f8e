#!/usr/bin/env bash
# Regenerates Sources/ONNX/onnx.pb.swift from Protos/onnx.proto. Run by hand after editing
# the .proto, then commit both; neither the build nor CI runs it (building the plugin takes
# ~10 minutes on 2 cores).
#
# Needs protoc (Debian's protobuf-compiler) and protoc-gen-swift built from the same
# swift-protobuf release the package depends on, outside this repository:
#   git clone --branch 1.39.0 https://github.com/apple/swift-protobuf "$PLUGIN_DIR"
#   (cd "$PLUGIN_DIR" && swift build -c release --product protoc-gen-swift)
# PLUGIN_DIR defaults to /work/tmp/protoc-gen-swift; PROTOC_GEN_SWIFT may name the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGIN_DIR="${PLUGIN_DIR:-/work/tmp/protoc-gen-swift}"
PLUGIN="${PROTOC_GEN_SWIFT:-$PLUGIN_DIR/.build/release/protoc-gen-swift}"
command -v protoc >/dev/null || { echo "gen-onnx-proto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -x "$PLUGIN" ] || { echo "gen-onnx-proto: protoc-gen-swift not found at $PLUGIN (see this script's header)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Public types, so that other targets (the ViT loader, ONNX export) use the messages directly.
protoc --plugin=protoc-gen-swift="$PLUGIN" --proto_path=Protos \
       --swift_opt=Visibility=Public --swift_out="$tmp" Protos/onnx.proto
mv "$tmp/onnx.pb.swift" Sources/ONNX/onnx.pb.swift
echo "wrote Sources/ONNX/onnx.pb.swift ($(protoc --version), $("$PLUGIN" --version 2>/dev/null || echo protoc-gen-swift))"
