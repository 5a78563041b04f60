"""The console's UI text in English and Chinese, chosen by ``?lang=`` or a cookie."""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["LANGUAGES", "LANG_COOKIE", "translator"]

LANG_COOKIE = "luodi_lang"
"""Remembers the language a browser picked (not a credential)."""

_EN: dict[str, str] = {
    "title": "luodi console",
    "sign_in": "Sign in",
    "sign_out": "Sign out",
    "with_key": "With an API key",
    "with_password": "With a username and password",
    "api_key": "API key",
    "username": "Username",
    "password": "Password",
    "bad_key": "That API key is not valid.",
    "bad_password": "Wrong username or password.",
    "locked": "Too many wrong passwords: password sign-in for this user is locked for a while.",
    "too_many": "Too many sign-in attempts from this address; wait a minute.",
    "expired_form": "The sign-in form expired; try again.",
    "playground": "Playground",
    "users": "Users",
    "keys": "API keys",
    "audit": "Audit",
    "model": "Model",
    "system": "System prompt",
    "message": "Message",
    "send": "Send",
    "stop": "Stop",
    "temperature": "Temperature",
    "max_tokens": "Max tokens",
    "json_mode": "JSON output",
    "thinking": "Thinking",
    "as_curl": "The request as curl",
    "signed_in_as": "Signed in as",
    "create_user": "Create a user",
    "name": "Name",
    "tenant": "Tenant",
    "roles": "Roles",
    "disabled": "Disabled",
    "create": "Create",
    "create_key": "Create a key",
    "user": "User",
    "key_name": "Key name",
    "expires_days": "Expires after (days, empty: never)",
    "priority": "Priority",
    "prefix": "Prefix",
    "created": "Created",
    "expires": "Expires",
    "revoke": "Revoke",
    "revoked": "Revoked",
    "never": "never",
    "key_once": "Copy this key now: it is shown only once.",
    "time": "Time",
    "route": "Route",
    "decision": "Decision",
    "reason": "Reason",
    "pii": "PII",
    "filter": "Filter",
    "next_page": "Next page",
    "first_page": "First page",
    "verify_chain": "Verify the chain",
    "chain_ok": "Chain verified: {checked} records intact.",
    "chain_bad": "Chain broken at record {seq}: {problem}",
    "export": "Export",
    "error": "Error",
    "forbidden": "Your role may not do this.",
    "language": "中文",
    "none": "none",
}

_ZH: dict[str, str] = {
    "title": "洛地控制台",
    "sign_in": "登录",
    "sign_out": "退出",
    "with_key": "使用 API 密钥",
    "with_password": "使用用户名和密码",
    "api_key": "API 密钥",
    "username": "用户名",
    "password": "密码",
    "bad_key": "API 密钥无效。",
    "bad_password": "用户名或密码错误。",
    "locked": "密码错误次数过多：该用户的密码登录已暂时锁定。",
    "too_many": "该地址登录尝试过多，请稍后再试。",
    "expired_form": "登录表单已过期，请重试。",
    "playground": "对话测试",
    "users": "用户",
    "keys": "API 密钥",
    "audit": "审计",
    "model": "模型",
    "system": "系统提示词",
    "message": "消息",
    "send": "发送",
    "stop": "停止",
    "temperature": "温度",
    "max_tokens": "最大 token 数",
    "json_mode": "JSON 输出",
    "thinking": "思考过程",
    "as_curl": "等价的 curl 请求",
    "signed_in_as": "当前用户",
    "create_user": "创建用户",
    "name": "名称",
    "tenant": "租户",
    "roles": "角色",
    "disabled": "已停用",
    "create": "创建",
    "create_key": "创建密钥",
    "user": "用户",
    "key_name": "密钥名称",
    "expires_days": "有效天数（留空：永久）",
    "priority": "优先级",
    "prefix": "前缀",
    "created": "创建时间",
    "expires": "过期时间",
    "revoke": "吊销",
    "revoked": "已吊销",
    "never": "永不",
    "key_once": "请立即复制此密钥：它只显示这一次。",
    "time": "时间",
    "route": "路由",
    "decision": "决定",
    "reason": "原因",
    "pii": "个人信息",
    "filter": "筛选",
    "next_page": "下一页",
    "first_page": "第一页",
    "verify_chain": "校验审计链",
    "chain_ok": "审计链完整：已校验 {checked} 条记录。",
    "chain_bad": "审计链在第 {seq} 条记录处断裂：{problem}",
    "export": "导出",
    "error": "错误",
    "forbidden": "您的角色无权执行此操作。",
    "language": "English",
    "none": "无",
}

LANGUAGES: Mapping[str, Mapping[str, str]] = {"en": _EN, "zh": _ZH}
"""Language code → message catalogue (both hold the same keys)."""


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)`` in ``lang``; an unknown key shows as itself."""
    catalogue = LANGUAGES.get(lang, _EN)

    def t(key: str, **values: object) -> str:
        text = catalogue.get(key, key)
        return text.format(**values) if values else text

    return t
