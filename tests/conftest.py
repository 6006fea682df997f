import hypothesis

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.dockerd",
    "tests.fixtures.registry",
    "tests.fixtures.corral",
    "tests.fixtures.netns",
    "tests.fixtures.vm_images",
    "tests.fixtures.databases",
    "tests.fixtures.s3",
    "tests.fixtures.live",
]

# Property tests explore the same examples on every run: CI stays reproducible, and a
# failure found once is found again on the next run (no example database to lose).
hypothesis.settings.register_profile("corral", derandomize=True, database=None)
hypothesis.settings.load_profile("corral")
