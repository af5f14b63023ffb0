"""Decide what kind of response we got, before anyone looks for a price.

Amazon answers a scraper with many pages that are not product pages: image captchas, "continue
shopping" soft captchas, AWS WAF challenges, the "Sorry! Something went wrong" dogs page when it
throttles, the 404 dogs page. A block page must never be parsed for a price, and telling them
apart must be cheap: the checks here look only at the HTTP status, the content type and a few
kilobytes of bytes (the head and the tail of the body); they never build a DOM.

Decisions worth knowing:

- The dogs "Something went wrong" template is what Amazon serves when it sheds or throttles
  automated traffic (HTTP 503, and HTTP 500 on some marketplaces). Both variants count as
  BLOCKED/service_unavailable so the circuit breaker backs off; a bare HTTP 500 without that
  template is a plain FAILED/http_5xx.
- Markers win over the HTTP status: a captcha served with HTTP 200 (the usual case) or 503 is a
  captcha.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scraping.results import ErrorKind, ScrapeStatus

# Block and error pages are 2-7 KB; scanning their whole body is free. A large body is a product
# page (or a truncated one): its block markers sit in the <head> (ue_sn = "opfcaptcha...") or at
# the very end, so only those windows are scanned.
SMALL_PAGE_BYTES = 64 * 1024
HEAD_SCAN_BYTES = 48 * 1024
TAIL_SCAN_BYTES = 16 * 1024
# How much of the start of the body must contain a "<" for it to count as HTML at all.
HTML_SNIFF_BYTES = 4 * 1024

HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")


def _markers(*phrases: str) -> tuple[bytes, ...]:
    # The scan window is lower-cased as bytes (ASCII letters only), so the phrases are too; their
    # other letters are written as the pages write them.
    return tuple(phrase.encode("utf-8").lower() for phrase in phrases)


# Markers are matched against the lower-cased scan window. Structure (form actions, input names,
# script hosts: the same on every marketplace) is looked for in every window; the visible
# sentences in each marketplace's language only on small pages, which is what block pages are
# (5-7 KB): a product page need not pay for a dozen more scans of its 64 KB window.
CAPTCHA_MARKERS = _markers(
    "validateCaptcha",
    "captchacharacters",
    "opfcaptcha.amazon.",  # opfcaptcha.amazon.com, .de, .co.jp...
    "csm-captcha-instrumentation",
    "Type the characters you see",
)
CAPTCHA_SENTENCES = _markers(
    "Geben Sie die Zeichen unten ein",
    "Saisissez les caractères que vous voyez",
    "Inserisci i caratteri visualizzati",
    "Introduzca los caracteres que ve",
    "Introduce los caracteres que ves",
    "Digite os caracteres que você vê",
    "Voer de tekens in die u hieronder ziet",
    "Ange tecknen du ser nedan",
    "Wpisz znaki, które widzisz",
    "Aşağıda gördüğünüz karakterleri girin",  # noqa: RUF001 - Turkish dotless i
    "أدخل الأحرف التي تراها",
    "表示されている文字を入力してください",
)
# The image captcha's own parts. A validateCaptcha form without them is the "continue shopping"
# soft captcha, whatever language its button speaks.
IMAGE_CAPTCHA_PARTS = _markers("captchacharacters", "/captcha/")
VALIDATE_CAPTCHA = b"validatecaptcha"
HIDDEN_KEYWORDS_INPUT = re.compile(rb"<input(?=[^>]*\btype=[\"']?hidden)(?=[^>]*\bname=[\"']?field-keywords)[^>]*>")
SOFT_CAPTCHA_MARKERS = _markers("Click the button below to continue shopping")
SOFT_CAPTCHA_SENTENCES = _markers(
    "Klicken Sie auf die Schaltfläche unten, um mit dem Einkauf fortzufahren",
    "Cliquez sur le bouton ci-dessous pour continuer vos achats",
    "Fai clic sul pulsante qui sotto per continuare a fare acquisti",
    "Haz clic en el botón de abajo para seguir comprando",
    "Clique no botão abaixo para continuar comprando",
    "Klik op de knop hieronder om verder te winkelen",
    "Klicka på knappen nedan för att fortsätta handla",
    "Kliknij poniższy przycisk, aby kontynuować zakupy",
    "Alışverişe devam etmek için aşağıdaki düğmeye tıklayın",  # noqa: RUF001 - Turkish dotless i
    "انقر على الزر أدناه لمتابعة التسوق",
    "買い物を続けるには下のボタンをクリックしてください",
)
WAF_MARKERS = (b"awswafcookiedomainlist", b"gokuprops", b"awswafintegration")
# The dogs error template: its <title> (English on every marketplace we have seen, and in the
# marketplace's language elsewhere) with a dogs marker, or the error images and links only the
# shedding page carries.
SERVICE_UNAVAILABLE_PHRASES = _markers(
    "something went wrong",
    "Es ist ein Fehler aufgetreten",
    "Etwas ist schiefgelaufen",
    "Une erreur s'est produite",
    "Quelque chose s'est mal passé",
    "Si è verificato un errore",
    "Qualcosa è andato storto",
    "Se ha producido un error",
    "Algo salió mal",
    "Algo deu errado",
    "Er is iets misgegaan",
    "Något gick fel",
    "Coś poszło nie tak",
    "Bir şeyler ters gitti",
    "حدث خطأ ما",
    "問題が発生しました",
)
SERVICE_UNAVAILABLE_TITLE = re.compile(
    rb"<title[^>]*>[^<]*(?:" + b"|".join(re.escape(phrase) for phrase in SERVICE_UNAVAILABLE_PHRASES) + rb")"
)
DOGS_MARKERS = (b"dogsofamazon", b"dogs of amazon", b"ref=cs_503", b"/error/500_503.", b"/error/500-title.")
# Only the shedding (503/500) template links with cs_503 or shows these error images.
SHEDDING_MARKERS = (b"ref=cs_503", b"/error/500_503.", b"/error/500-title.")
NOT_FOUND_TITLE = re.compile(rb"<title[^>]*>[^<]*page not found", re.IGNORECASE)
NOT_FOUND_MARKERS = _markers(
    "ref=cs_404",
    "couldn't find that page",
    "could not find that page",
    "Seite nicht gefunden",
    "Page introuvable",
    "Pagina non trovata",
    "Página no encontrada",
    "Página não encontrada",
    "Pagina niet gevonden",
    "Sidan hittades inte",
    "Nie znaleziono strony",
    "Sayfa bulunamadı",  # noqa: RUF001 - Turkish dotless i
    "الصفحة غير موجودة",
    "ページが見つかりません",
)


@dataclass(frozen=True, slots=True)
class Classification:
    """What a response is. ``is_product_page`` means: go on and parse it for a price."""

    status: ScrapeStatus
    error_kind: ErrorKind = ErrorKind.NONE
    message: str = ""

    @property
    def is_product_page(self) -> bool:
        return self.status is ScrapeStatus.SUCCESS


PRODUCT_PAGE = Classification(ScrapeStatus.SUCCESS)


def _blocked(kind: ErrorKind, message: str) -> Classification:
    return Classification(ScrapeStatus.BLOCKED, kind, message)


def _failed(kind: ErrorKind, message: str) -> Classification:
    return Classification(ScrapeStatus.FAILED, kind, message)


def scan_window(body: bytes) -> bytes:
    """The lower-cased bytes the marker checks look at: all of a small page, else head + tail."""
    if len(body) <= SMALL_PAGE_BYTES:
        return body.lower()
    return (body[:HEAD_SCAN_BYTES] + b"\n" + body[-TAIL_SCAN_BYTES:]).lower()


def _is_html_content_type(content_type: str | None) -> bool:
    if not content_type:
        return True  # no header: judge by the body
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in HTML_CONTENT_TYPES


def _looks_like_html(body: bytes) -> bool:
    start = body[:HTML_SNIFF_BYTES]
    if b"\x00" in start:
        return False  # binary (an image, a gzip stream we failed to decode, UTF-16...)
    stripped = start.lstrip()
    if stripped[:1] in (b"{", b"["):
        return False  # JSON
    return b"<" in start


def _is_soft_captcha_form(window: bytes) -> bool:
    """The one-button robot check, in any language: a validateCaptcha form that carries the
    search field as a hidden input (the image captcha's is the visible text box), and no image.

    Only on a small page: a large page's head may hold the captcha script's name alone.
    """
    return (
        len(window) <= SMALL_PAGE_BYTES
        and VALIDATE_CAPTCHA in window
        and HIDDEN_KEYWORDS_INPUT.search(window) is not None
        and not any(part in window for part in IMAGE_CAPTCHA_PARTS)
    )


def _is_not_found_template(window: bytes) -> bool:
    return bool(NOT_FOUND_TITLE.search(window)) or any(marker in window for marker in NOT_FOUND_MARKERS)


def classify(http_status: int, content_type: str | None, body: bytes) -> Classification:
    """Classify one HTTP response as a product page, a block or a failure.

    Order matters: rate limiting and block markers come first (a captcha is a captcha whatever
    the status), then HTTP errors, then "is this HTML at all". Anything left is a candidate
    product page; whether it holds a price is the parser's business.
    """
    if http_status == 429:
        return _blocked(ErrorKind.RATE_LIMITED, "HTTP 429: Amazon is rate limiting us.")

    window = scan_window(body)
    if any(marker in window for marker in WAF_MARKERS):
        return _blocked(ErrorKind.WAF, "AWS WAF challenge page.")
    if http_status == 202:
        # AWS WAF answers its JavaScript challenge with 202 and an almost empty body.
        return _blocked(ErrorKind.WAF, "HTTP 202: AWS WAF challenge.")
    is_small = len(body) <= SMALL_PAGE_BYTES
    if (
        any(marker in window for marker in SOFT_CAPTCHA_MARKERS)
        or (is_small and any(marker in window for marker in SOFT_CAPTCHA_SENTENCES))
        or _is_soft_captcha_form(window)
    ):
        return _blocked(ErrorKind.SOFT_CAPTCHA, "Soft captcha: 'continue shopping' robot check.")
    if any(marker in window for marker in CAPTCHA_MARKERS) or (
        is_small and any(marker in window for marker in CAPTCHA_SENTENCES)
    ):
        return _blocked(ErrorKind.CAPTCHA, "Captcha: Amazon asked us to type the characters of an image.")
    # Error templates are 2-3 KB; requiring a small page keeps a product page whose scripts
    # say "Something went wrong" (most do) from ever being taken for one.
    if is_small and (
        any(marker in window for marker in SHEDDING_MARKERS)
        or (SERVICE_UNAVAILABLE_TITLE.search(window) and any(marker in window for marker in DOGS_MARKERS))
    ):
        return _blocked(
            ErrorKind.SERVICE_UNAVAILABLE,
            f"'Sorry! Something went wrong' dogs page (HTTP {http_status}): Amazon is shedding our requests.",
        )
    if http_status == 503:
        return _blocked(ErrorKind.SERVICE_UNAVAILABLE, "HTTP 503: service unavailable.")

    if http_status == 404 or (is_small and _is_not_found_template(window)):
        return _failed(ErrorKind.NOT_FOUND, f"HTTP {http_status}: product page not found.")
    if 300 <= http_status < 400:
        return _failed(ErrorKind.REDIRECT_REFUSED, f"HTTP {http_status}: unexpected redirect.")
    if 400 <= http_status < 500:
        return _failed(ErrorKind.HTTP_4XX, f"HTTP {http_status}.")
    if not 200 <= http_status < 300:
        return _failed(ErrorKind.HTTP_5XX, f"HTTP {http_status}.")

    if not body:
        return _failed(ErrorKind.NOT_HTML, "Empty body.")
    if not _is_html_content_type(content_type):
        media_type = (content_type or "").split(";", 1)[0].strip()[:60]
        return _failed(ErrorKind.NOT_HTML, f"Not an HTML page (content type {media_type!r}).")
    if not _looks_like_html(body):
        return _failed(ErrorKind.NOT_HTML, "The body is not HTML.")
    return PRODUCT_PAGE
