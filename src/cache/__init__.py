"""headwater.cache"""
