"""Runs last (alphabetical order): after every other test module has torn down its sessions,
no device process of this Python may be left."""
import gc


def test_no_device_process_left_after_the_suite(host_cpu_children):
    gc.collect()
    assert host_cpu_children() == []
