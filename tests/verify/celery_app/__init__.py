"""A small Celery application run by the application-role tests (test_app_celery.py).

It is started as `celery -A tasks worker` and `python3 -m producer` with this directory
on the path, inside the deployment's network (or on the runner), never imported by the
suite itself.
"""
