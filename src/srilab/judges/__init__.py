"""srilab.judges"""
