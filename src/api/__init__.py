"""headwater.api"""
