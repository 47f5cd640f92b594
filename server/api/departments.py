from flask_smorest import Blueprint

blp = Blueprint("departments", __name__, url_prefix="/departments")
