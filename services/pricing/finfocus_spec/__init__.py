"""finfocus-spec's plugin protocol (`finfocus.v1.CostSourceService`), spoken by the plugin host
beside this project's own `finfocus.plugin.v1`, so plugins built for rshade's FinFocus CLI
(aws-public, azure-public, aws-ce, opencost, vantage, ...) can be installed and used here.

- `proto/finfocus/v1/{costsource,budget,enums,focus}.proto`: vendored unchanged from
  https://github.com/rshade/finfocus-spec (`proto/finfocus/v1/`, release v0.5.5, commit
  85199de5d35e8f6bbb4f3fca2ed3f421bf674f2e), Apache License 2.0 (`LICENSE-finfocus-spec`).
- `*_pb2.py`, `costsource_pb2_grpc.py`: generated from them by `generate.py` (grpcio-tools).
- `adapter.py`: pure translation of the host's questions and the plugin's answers.
- `launch.py`: start-up (`--port`, `PORT=` announcement) and the RPCs, through the host.
- `layout.py`: plugins installed the finfocus-spec way (an executable, no plugin.yaml).
"""
