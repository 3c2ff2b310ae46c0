// Problems of one table as it is on screen: text or icons running out of their cell, text cut
// by an element that is not meant to cut, a word split over two lines, and (for the columns in
// `uncovered`) a cell that is partly under the fixed columns (名称 on the left, 操作 on the right).
({ table, cells, uncovered, cutOnPurpose }) => {
  const root = document.querySelector(table)
  const problems = []
  const edge = (col) => root.querySelector(`thead th[data-col=${col}]`)?.getBoundingClientRect()
  const left = edge('name'), right = edge('actions')
  const textNodes = (cell) => {
    const nodes = []
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT)
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (n.textContent.trim() && !n.parentElement.closest(cutOnPurpose)) nodes.push(n)
    }
    return nodes
  }
  for (const cell of root.querySelectorAll(cells)) {
    const col = cell.dataset.col || ''
    if (!cell.getClientRects().length) continue
    const box = cell.getBoundingClientRect()
    const where = `${cell.tagName.toLowerCase()}[${col}] "${cell.innerText.trim().slice(0, 40)}"`
    const outside = (r) => r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5)
    for (const n of textNodes(cell)) {
      const range = document.createRange()
      range.selectNodeContents(n)
      if ([...range.getClientRects()].some(outside)) problems.push(`${where}: text runs out of its cell`)
      // a word may wrap after a hyphen (Sub-/images), nowhere else
      for (const m of n.textContent.matchAll(/[^\s-]+-?/g)) {
        range.setStart(n, m.index)
        range.setEnd(n, m.index + m[0].length)
        const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)))
        if (lines.size > 1) problems.push(`${where}: "${m[0]}" is split over ${lines.size} lines`)
      }
    }
    for (const el of cell.querySelectorAll('svg, img, .ant-tag, .ant-btn')) {
      if (outside(el.getBoundingClientRect())) problems.push(`${where}: ${el.tagName.toLowerCase()} runs out of its cell`)
    }
    for (const el of cell.querySelectorAll('*')) {
      const style = getComputedStyle(el)
      if (style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1 && !el.matches(cutOnPurpose))
        problems.push(`${where}: cut inside ${el.className || el.tagName}`)
    }
    // A cell may slip under a fixed column by a pixel of rounding (column widths are whole
    // pixels, a stretched table's are not); its text and icons may not.
    if (uncovered.includes(col) && left && right) {
      const under = (r) => r.width > 0 && (r.left < left.right - 0.5 || r.right > right.left + 0.5)
      const content = [...textNodes(cell)].flatMap((n) => {
        const range = document.createRange()
        range.selectNodeContents(n)
        return [...range.getClientRects()]
      })
      for (const el of cell.querySelectorAll('svg, img, .ant-tag')) content.push(el.getBoundingClientRect())
      if (box.left < left.right - 1.5 || box.right > right.left + 1.5 || content.some(under))
        problems.push(`${where}: under a fixed column (${box.left}-${box.right}, free ${left.right}-${right.left})`)
    }
  }
  return problems
}
