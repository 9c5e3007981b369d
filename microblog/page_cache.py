"""Form pages that are the same for every visitor but for the CSRF token: rendered once.

The sign-in page spent most of its time rendering a template whose output
differs between two first-time visitors only in the CSRF token. A page
rendered through `render_form_page` is rendered once per app and process with a
placeholder where the token goes; each request then gets that HTML with its
own token (generated and kept in the session exactly as Flask-WTF always does:
the protection is unchanged). Anything that makes a page personal (a POST,
form errors, flashed messages, a signed-in user) renders it normally.
"""

import secrets

from flask import current_app, render_template, request, session
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from microblog.i18n import page_locale

TOKEN_PLACEHOLDER = f"csrf-placeholder-{secrets.token_hex(16)}"  # hex: autoescape keeps it


def render_form_page(template, form, **context):
    """`render_template(template, form=form, **context)`, from the cache when it is safe.

    `form` may be the form's class: it is then built only if the page is rendered.
    """

    def render(**extra):
        built = form() if isinstance(form, type) else form
        return render_template(template, form=built, **context, **extra)

    personal = (
        request.method != "GET"
        or (not isinstance(form, type) and form.errors)
        or current_user.is_authenticated
        or bool(session.get("_flashes"))  # messages waiting to be shown
        or current_app.debug  # templates reload
    )
    if personal:
        return render()
    cache = current_app.extensions.setdefault("microblog.page_cache", {})
    key = (template, page_locale(), request.script_root, tuple(sorted(context.items())))
    html = cache.get(key)
    if html is None:
        html = render(csrf_token=lambda: TOKEN_PLACEHOLDER)
        if TOKEN_PLACEHOLDER not in html:  # the template did not use csrf_token()
            return html
        cache[key] = html
    return html.replace(TOKEN_PLACEHOLDER, generate_csrf())
