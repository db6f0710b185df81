"""The two WeCom (企业微信) channels and what only they need.

`crypto` (callback signature, decryption, URL verification), `client` (the server API with its
shared access token), `app` (the 自建应用: `/wecom/callback`, message/send, appchat/send) and
`aibot` (the 智能机器人 in a building's group: `/wecom/aibot`, replies to its response_url).
"""
