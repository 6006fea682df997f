"""The Docker Engine driver: containers on a host reached over the Docker API."""
