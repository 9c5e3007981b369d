"""Entry point for production servers: gunicorn wsgi:app"""

from microblog import create_app

app = create_app()
