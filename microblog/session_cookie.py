"""Flask's signed-cookie sessions, with the signing serializer built once per key.

Flask builds a new URLSafeTimedSerializer twice per request (to open the
cookie and to save it). The serializer holds nothing per request, so one per
(SECRET_KEY, SECRET_KEY_FALLBACKS) does the same work: same cookie, same
signature, same expiry checks; a rotated key gets a serializer of its own.
"""

from flask.sessions import SecureCookieSessionInterface


class SignedCookieSessions(SecureCookieSessionInterface):
    def __init__(self):
        self.serializers = {}

    def get_signing_serializer(self, app):
        """Flask's serializer for the app's current keys, built the first time they are seen."""
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        serializer = self.serializers.get(key)
        if serializer is None:
            serializer = self.serializers[key] = super().get_signing_serializer(app)
        return serializer
