"""srilab.toy"""
