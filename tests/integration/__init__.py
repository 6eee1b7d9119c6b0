"""tests.integration"""
