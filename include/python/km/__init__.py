"""What a Python program running in km can ask km for (`km --putenv PYTHONPATH=<km>/include/python ...`)."""
