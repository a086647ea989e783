"""srilab.study"""
