// MathJax 3 settings for pymdownx.arithmatex (generic mode: \( \) inline, \[ \] display, \tag{} labels).
// MathJax itself is served from the site (mathjax/, copied in by hooks.py from the sphinx-mathjax-offline
// package), with SVG output, whose glyphs are in the script itself: the math renders offline, with no CDN
// and no web fonts.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "ams",
  },
  svg: { fontCache: "global" },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
