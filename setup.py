from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="pyramid_notebook",
    version="0.5.0.dev0",
    description="Give a Pyramid site's staff a Jupyter Notebook shell holding the site's own objects",
    long_description=Path(__file__).with_name("README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    package_data={"pyramid_notebook.demo": ["templates/*.jinja2"], "pyramid_notebook.server": ["templates/*.html"]},
    zip_safe=False,
    classifiers=[
        "Framework :: Pyramid",
        "Framework :: Jupyter",
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
    ],
    install_requires=[
        "pyramid>=2.0",
        "notebook>=7.0,<8",
        "jupyter_server>=2.4,<3",
        "nbformat>=5",
        "urllib3>=2",
        "daemonocle==1.2.3",
        # daemonocle 1.2.3 uses click APIs that click 9 removes.
        "click<9",
        "psutil>=5.9",
    ],
    extras_require={
        "uwsgi": ["uwsgi>=2.0.21", "websocket-client>=1.6"],
        "demo": [
            "pyramid_jinja2>=2.10",
            "pyramid_tm>=2.5",
            "zope.sqlalchemy>=3.0",
            "SQLAlchemy>=2.0",
            "waitress>=2.1",
            "bcrypt>=4.0",
        ],
        "test": [
            "pytest>=8",
            "requests>=2.28",
            "WebTest>=3.0",
            "websocket-client>=1.6",
            "splinter>=0.21",
            "selenium>=4.20",
            "ruff>=0.6",
            "SQLAlchemy>=2.0",
        ],
    },
    entry_points={
        "paste.app_factory": ["demo = pyramid_notebook.demo:main"],
        "console_scripts": ["pyramid-notebook = pyramid_notebook.cli:main"],
        "jupyter_client.kernel_provisioners": [
            "pyramid-notebook-provisioner = pyramid_notebook.server.provisioner:AdoptingProvisioner"
        ],
    },
)
