"""Tests of the operations files: image, deployment manifests, generated docs."""
