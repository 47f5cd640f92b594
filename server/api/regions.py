from flask_smorest import Blueprint

blp = Blueprint("regions", __name__, url_prefix="/regions")
