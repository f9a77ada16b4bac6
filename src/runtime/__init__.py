"""headwater.runtime"""
