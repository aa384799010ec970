"""Tests for the cluster side: launcher configs, KubeRay manifests, the image, runtime_env, submit."""
