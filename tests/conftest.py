pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.dockerd",
    "tests.fixtures.corral",
    "tests.fixtures.netns",
    "tests.fixtures.vm_images",
]
