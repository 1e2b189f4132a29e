"""The thin Singer layer: streams, schemas, output, state, and the sync that ties them."""
