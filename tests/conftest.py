pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.dockerd",
    "tests.fixtures.corral",
]
